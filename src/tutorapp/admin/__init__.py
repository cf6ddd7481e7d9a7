"""The back office: admin pages over the other domains ' services."""
