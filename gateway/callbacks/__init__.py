"""Evaluation callbacks: served items, survey calls, ratings, rectification orders."""
