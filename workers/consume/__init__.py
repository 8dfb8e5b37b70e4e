"""Step 5: reading the entries and notices streams through the consumer group."""
