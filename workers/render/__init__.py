"""Step 7, pure: alerts, digests and notices as webhook JSON, email and chat messages."""
