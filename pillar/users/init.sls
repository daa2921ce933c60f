{%- from 'users/map.jinja' import admins with context %}
{%- set sudoers = [] %}
{%- for name, user in admins.items() if 'sudo' in user.groups %}{% do sudoers.append(name) %}{% endfor %}
users:
{%- for name, user in admins.items() %}
  {{ name }}:
    uid: {{ user.uid }}
    fullname: {{ user.fullname|yaml_dquote }}
    groups: {{ user.groups|yaml }}
    shell: /bin/bash
{%- endfor %}
sudoers: {{ sudoers|yaml }}
