"""Destinations: where batches go (local folder, SFTP drop, staging database, Ed-Fi API)."""
