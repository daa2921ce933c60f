# The site's highstate; each role of the VM-roles document gets its states in later work.
base:
  '*': []
