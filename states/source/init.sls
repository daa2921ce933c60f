# source: source code hosting through git, using Gitolite (Debian's gitolite3), for every
# repository the site depends on, public or not. Served over SSH as the `git` user.
#
# ONLY source.webplatform.org (production) is the source of truth. A staging source VM, if
# one is ever built, is not: staging pulls from production's (infra:hosts_entries:source in
# pillar/infra/staging.sls points there), and nothing is pushed to a staging copy.
#
# Assumed: the volume (pillar gitolite:volume) is attached and formatted when the VM is
# created; it is mounted, never formatted, here, so a repository volume is never wiped.
{%- from 'site.jinja' import site with context %}
{%- from 'monit/check.jinja' import monit_check with context %}
{%- from 'systemd/unit.jinja' import systemd_unit with context %}
{%- set gitolite = salt['pillar.get']('gitolite', {}) %}
{%- set home = gitolite.get('home', '/srv/git') %}
{%- set user = gitolite.get('user', 'git') %}
include:
  # Gitolite has no daemon of its own: it is reached through sshd.
  - sshd
  - monit

gitolite3:
  pkg.installed: []

gitolite-volume:
  mount.mounted:
    - name: {{ home }}
    - device: {{ gitolite.volume.device }}
    - fstype: {{ gitolite.volume.fstype }}
    - opts: defaults,noatime
    - mkmnt: True
    - persist: True

gitolite-user:
  user.present:
    - name: {{ user }}
    - home: {{ home }}
    - createhome: False
    - system: True
    - shell: /bin/sh
    - require:
      - mount: gitolite-volume

{{ home }}:
  file.directory:
    - user: {{ user }}
    - group: {{ user }}
    - mode: '0750'
    - require:
      - mount: gitolite-volume
      - user: gitolite-user

# The key file's name makes the gitolite user name: admin.pub -> `admin`, who owns the
# gitolite-admin repository.
gitolite-admin-key:
  file.managed:
    - name: {{ home }}/admin.pub
    - contents: {{ gitolite.admin_key|yaml_dquote }}
    - user: {{ user }}
    - group: {{ user }}
    - mode: '0644'
    - require:
      - file: {{ home }}

# Creates ~/repositories and the gitolite-admin repository on a fresh volume, and on a new
# admin key replaces keydir/admin.pub in it; running it again is harmless.
gitolite-setup:
  cmd.run:
    - name: gitolite setup -pk {{ home }}/admin.pub
    - runas: {{ user }}
    - cwd: {{ home }}
    - env:
      - HOME: {{ home }}
    - onchanges:
      - file: gitolite-admin-key
    - require:
      - pkg: gitolite3

# The VMs deploy from here without keys: a read-only git daemon on the internal address
# (git://source/<name>.git) serves the repositories gitolite marks git-daemon-export-ok,
# i.e. those whose gitolite-admin rules give `R = daemon`. Nothing is ever pushed this way.
git:
  pkg.installed: []

{{ systemd_unit('git-daemon', 'salt://source/files/git-daemon.service.jinja', {
     'address': site.internal_ip, 'repositories': home ~ '/repositories', 'user': user}) }}

git-daemon:
  service.running:
    - enable: True
    - require:
      - pkg: git
      - cmd: git-daemon-daemon-reload
      - cmd: gitolite-setup
    - watch:
      - file: git-daemon-unit

{{ monit_check('git-daemon', matching='git-daemon', port=9418, host=site.internal_ip) }}
