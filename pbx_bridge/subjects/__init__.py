"""Data subjects: who a phone number is, and what we hold about them."""
