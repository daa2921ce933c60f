# Roles whose code is not packaged in Debian deploy it from the source VM with git
# (webapp/deploy.jinja): the document names source.webplatform.org the only source of truth.
git:
  pkg.installed: []
