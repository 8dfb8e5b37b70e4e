"""Step 6, pure: matching events against rules (Aho-Corasick scan, boolean trees) and
explaining why a rule matches."""
