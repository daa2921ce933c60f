# The site's pillar top file; each role's pillar arrives with the site work.
base:
  '*': []
