# The operators' accounts and SSH keys on every VM (pillar: users, groups).
{%- set groups = salt['pillar.get']('groups', {}) %}
{%- for name, group in groups|dictsort %}
group-{{ name }}:
  group.present:
    - name: {{ name }}
    - gid: {{ group.gid }}
{%- endfor %}

{%- for name, user in salt['pillar.get']('users', {})|dictsort %}
user-{{ name }}:
  user.present:
    - name: {{ name }}
    - uid: {{ user.uid }}
    - fullname: {{ user.fullname|yaml_dquote }}
    - shell: {{ user.get('shell', '/bin/bash') }}
    {#- Site groups are optional so that a dry run, in which they are not created yet,
        still checks (the requisites create them first in a real run); any other group
        must exist already, so a misspelled one fails. #}
    - groups: {{ user.get('groups', [])|reject('in', groups)|list|yaml }}
    - optional_groups: {{ user.get('groups', [])|select('in', groups)|list|yaml }}
    - require:
{%- for group in groups|sort %}
      - group: group-{{ group }}
{%- endfor %}

ssh-keys-{{ name }}:
  ssh_auth.present:
    - user: {{ name }}
    - names: {{ user.get('ssh_keys', [])|yaml }}
    - require:
      - user: user-{{ name }}
{%- endfor %}
