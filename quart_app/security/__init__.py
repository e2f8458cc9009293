"""The policies, over the store (which never imports them): input limits, rate limits and
login limits, the client address behind trusted proxies, password hashing off the event
loop, CORS and headers, OAuth clients, DPoP binding."""
