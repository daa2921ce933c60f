# Roles whose code is not packaged in Debian deploy it from the source VM with git
# (webapp/deploy.jinja): the document names source.webplatform.org the only source of truth.
# They clone from its read-only git daemon, which serves gitolite's repositories on the
# internal network: git://source/<name>.git.
git:
  pkg.installed: []
