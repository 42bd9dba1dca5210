"""Tests of pipelines/destinations/."""
