# elastic: Elasticsearch. The document leaves this role blank; assumed from what the site
# ran: the search index of the docs wiki (MediaWiki's CirrusSearch extension), queried by
# the app VMs over the internal network. Hence Elastic's 7.x series (CirrusSearch does not
# support 8.x), from Elastic's apt repository since Debian has no package. One cluster per
# level; the nodes are listed in pillar elastic:nodes.
{%- from 'site.jinja' import site with context %}
{%- from 'monit/check.jinja' import monit_check with context %}
{%- set elastic = salt['pillar.get']('elastic', {}) %}
{%- set keyring = '/etc/apt/keyrings/elasticsearch.gpg' %}
include:
  - monit

{#- pkgrepo.managed de-armors the downloaded key with gpg, into a keyring directory that
    must exist. #}
elasticsearch-gnupg:
  pkg.installed:
    - name: gnupg

elasticsearch-keyrings:
  file.directory:
    - name: /etc/apt/keyrings
    - mode: '0755'

elasticsearch-repo:
  pkgrepo.managed:
    - name: deb [signed-by={{ keyring }}] https://artifacts.elastic.co/packages/{{ elastic.get('series', '7.x') }}/apt stable main
    - file: /etc/apt/sources.list.d/elasticsearch.list
    - key_url: https://artifacts.elastic.co/GPG-KEY-elasticsearch
    - aptkey: False
    - require:
      - pkg: elasticsearch-gnupg
      - file: elasticsearch-keyrings

elasticsearch:
  pkg.installed:
    - require:
      - pkgrepo: elasticsearch-repo
  service.running:
    - enable: True
    - watch:
      - file: /etc/elasticsearch/elasticsearch.yml
      - file: /etc/elasticsearch/jvm.options.d/heap.options

/etc/elasticsearch/elasticsearch.yml:
  file.managed:
    - source: salt://elastic/files/elasticsearch.yml.jinja
    - template: jinja
    - user: root
    - group: elasticsearch
    - mode: '0660'
    - context:
        cluster_name: webplatform-{{ site.level }}
        node_name: {{ grains['id'].split('.')[0] }}
        bind: {{ site.internal_ip }}
        nodes: {{ elastic.get('nodes', [])|yaml }}
    - require:
      - pkg: elasticsearch

/etc/elasticsearch/jvm.options.d/heap.options:
  file.managed:
    - source: salt://elastic/files/heap.options.jinja
    - template: jinja
    - user: root
    - group: elasticsearch
    - mode: '0660'
    - context:
        heap: {{ elastic.get('heap', '1g') }}
    - require:
      - pkg: elasticsearch

{{ monit_check('elasticsearch', service='elasticsearch', pidfile='/run/elasticsearch/elasticsearch.pid', port=9200, host=site.internal_ip) }}
