"""aiohttp routes: parse and validate, authenticate, call a service, shape JSON."""
