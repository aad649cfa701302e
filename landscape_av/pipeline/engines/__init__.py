"""Engines run the per-source stages (`source_stages.process`) of a build's sources: `local` in
this machine's threads, `ray` as Ray tasks on a cluster. Each implements `interface.Engine`;
`registry.open_engine` picks one by `BuildConfig.engine`, so the build never knows which it has."""
