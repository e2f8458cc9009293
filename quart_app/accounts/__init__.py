"""The domain: what a user and an admin can do with an account, without HTTP."""
