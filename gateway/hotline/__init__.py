"""The citizen hotline: the domain actions its flow calls (open a case, look up a status)."""
