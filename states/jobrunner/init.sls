# jobrunner: the job queue runner of the docs wiki (app). The document leaves the role blank;
# assumed from what the site ran: MediaWiki's maintenance/runJobs.php --wait as a systemd
# service, with the app role's code and LocalSettings.php (app/mediawiki.sls; the jobrunner
# pillar includes the app one). It listens on no port at all: it only connects out, to
# masterdb and to the memcache, sessions and elastic VMs. Monit watches the process.
{%- from 'monit/check.jinja' import monit_check with context %}
{%- from 'systemd/unit.jinja' import systemd_unit with context %}
{%- set runner = salt['pillar.get']('jobrunner', {}) %}
include:
  - monit
  - app.mediawiki

# Debian ships a unit of this name in /lib, disabled; this one, in /etc, takes its place.
{{ systemd_unit('mediawiki-jobrunner', 'salt://jobrunner/files/mediawiki-jobrunner.service.jinja', {
     'maxjobs': runner.get('maxjobs', 1000),
     'procs': runner.get('procs', 1),
     'memory_limit': runner.get('memory_limit', '256M')}) }}

mediawiki-jobrunner:
  service.running:
    - enable: True
    - require:
      - pkg: mediawiki
      - cmd: mediawiki-jobrunner-daemon-reload
    - watch:
      - file: mediawiki-jobrunner-unit
      - file: /etc/mediawiki/LocalSettings.php

{{ monit_check('mediawiki-jobrunner', matching='maintenance/runJobs.php') }}
