# Node.js for the roles that run Node.js services of their own (accounts, bots): Debian's
# nodejs and npm, and git to deploy them from the source VM (webapp/node.jinja).
include:
  - webapp.deploy

nodejs:
  pkg.installed:
    - pkgs:
      - nodejs
      - npm
