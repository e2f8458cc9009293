"""The accounts domain: sessions, security events, password rules, second factors,
administration.

What a user and an admin can do, without HTTP: the routes turn requests into calls of
these functions and their results (or exceptions) into answers.
"""
