"""WebSub push: hub discovery, subscriptions in Redis, the callback server (`websub`)."""
