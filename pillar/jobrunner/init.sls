# MediaWiki's job runners. They run the docs wiki's code with its configuration, so they get
# the app pillar (and its secrets) too.
include:
  - app

jobrunner:
  # Jobs a runner does before it exits and systemd starts a fresh one.
  maxjobs: 1000
  # Runner processes per VM.
  procs: 2
  memory_limit: 256M
