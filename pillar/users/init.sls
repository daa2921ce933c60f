{%- from 'users/map.jinja' import admins, site_groups with context %}
{%- set sudoers = [] %}
{%- for name, user in admins.items() if 'sudo' in user.groups %}{% do sudoers.append(name) %}{% endfor %}
users:
{%- for name, user in admins.items() %}
  {{ name }}:
    uid: {{ user.uid }}
    fullname: {{ user.fullname|yaml_dquote }}
    groups: {{ user.groups|yaml }}
    shell: /bin/bash
    ssh_keys: {{ user.ssh_keys|yaml }}
{%- endfor %}
groups: {{ site_groups|yaml }}
sudoers: {{ sudoers|yaml }}
