"""The domain: what a user and an admin can do with accounts, without HTTP."""
