"""Password hashing off the event loop, and throttling."""
