"""A session's life: plan and create, lifecycle, listing, agents, caches, files in and out."""
