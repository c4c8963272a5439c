"""Where is this address? The standard-address registry, Chinese address text and the matcher."""
