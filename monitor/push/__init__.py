"""WebSub push: hub discovery, subscriptions in Redis, the subscriber (`websub`), the
callback server (`callbacks`)."""
