# Elasticsearch on the elastic VMs (states/elastic).
elastic:
  # Elastic's apt repository series. MediaWiki's CirrusSearch works with 7.x, not 8.x.
  series: 7.x
  # JVM heap (-Xms = -Xmx): about half the VM's memory, never above 31g.
  heap: 1g
  # The node names (VM short names) of a level's cluster; one name makes a single-node
  # cluster. Adding VMs here turns on discovery between them.
  nodes:
    - elastic1
