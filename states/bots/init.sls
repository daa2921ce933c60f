# bots: the site's IRC bots. The document leaves the role blank; assumed: Hubot instances
# (Node.js, with its IRC adapter) deployed with git from the source VM into /srv/bots/<name>,
# one `bot-<name>` systemd service each, from the `bots:instances` pillar (network,
# channels, nick). They only connect out to their IRC network: nothing listens for them,
# so there is no inbound exposure at all. Monit watches each bot's process.
{%- from 'monit/check.jinja' import monit_check with context %}
{%- from 'webapp/deploy.jinja' import git_deploy with context %}
{%- from 'webapp/systemd.jinja' import systemd_unit with context %}
{%- set bots = salt['pillar.get']('bots', {}) %}
{%- set home = '/srv/bots' %}
include:
  - monit
  - webapp.deploy

bots-packages:
  pkg.installed:
    - pkgs:
      - nodejs
      - npm

bots:
  user.present:
    - system: True
    - home: {{ home }}
    - createhome: False
    - shell: /usr/sbin/nologin

/etc/bots:
  file.directory:
    - mode: '0755'
{%- for name, bot in bots.get('instances', {})|dictsort %}
{%- set unit = 'bot-' ~ name %}
{%- set dir = home ~ '/' ~ name %}
{%- set command = bot.get('command', dir ~ '/node_modules/.bin/hubot --adapter irc --name ' ~ bot.nick) %}

{{ git_deploy(unit, bot.repo, bot.rev, dir, 'bots') }}

# Its Node.js dependencies (the adapter and scripts), for the revision just deployed.
{{ unit }}-install:
  cmd.run:
    - name: npm install --production
    - cwd: {{ dir }}
    - runas: bots
    - onchanges:
      - cmd: {{ unit }}-deploy
    - require:
      - pkg: bots-packages

# Where it connects, and its NickServ password: root only.
/etc/bots/{{ name }}.env:
  file.managed:
    - source: salt://bots/files/bot.env.jinja
    - template: jinja
    - mode: '0600'
    - context:
        bot: {{ bot|yaml }}
    - require:
      - file: /etc/bots

{{ systemd_unit(unit, 'salt://bots/files/bot.service.jinja', {
     'name': name, 'dir': dir, 'command': command,
     'description': bot.get('description', 'IRC bot ' ~ bot.nick)}) }}

{{ unit }}:
  service.running:
    - enable: True
    - require:
      - cmd: {{ unit }}-daemon-reload
    - watch:
      - file: {{ unit }}-unit
      - file: /etc/bots/{{ name }}.env
      - cmd: {{ unit }}-install

{{ monit_check(unit, matching=bot.get('matching', dir ~ '/')) }}
{%- endfor %}
