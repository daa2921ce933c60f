# bots: the site's IRC bots. The document leaves the role blank; assumed: Hubot instances
# (Node.js, with its IRC adapter) deployed with git from the source VM into /srv/bots/<name>,
# one `bot-<name>` systemd service each (webapp/node.jinja), from the `bots:instances`
# pillar (network, channels, nick). They only connect out to their IRC network: nothing
# listens for them, so there is no inbound exposure at all. Monit watches each bot's process.
{%- from 'monit/check.jinja' import monit_check with context %}
{%- from 'webapp/node.jinja' import node_user, node_service with context %}
{%- set bots = salt['pillar.get']('bots', {}) %}
{%- set home = '/srv/bots' %}
include:
  - monit
  - webapp.node

{{ node_user('bots', home, '/etc/bots') }}
{%- for name, bot in bots.get('instances', {})|dictsort %}
{%- set unit = 'bot-' ~ name %}
{%- set dir = home ~ '/' ~ name %}
{#- Hubot's IRC adapter reads where it connects, and its NickServ password, from the
    environment. #}
{%- set env = {
      'HUBOT_IRC_SERVER': bot.network.server,
      'HUBOT_IRC_PORT': bot.network.get('port', 6697),
      'HUBOT_IRC_NICK': bot.nick,
      'HUBOT_IRC_ROOMS': bot.channels|join(',')} %}
{%- if bot.network.get('tls', True) %}
{%- do env.update({'HUBOT_IRC_USESSL': 'true'}) %}
{%- endif %}
{%- if bot.get('password') %}
{%- do env.update({'HUBOT_IRC_NICKSERV_PASSWORD': bot.password}) %}
{%- endif %}
{%- do env.update(bot.get('env', {})) %}

{#- A bot that exits, even cleanly, comes back, but only after 30s: reconnecting any
    faster could get it banned from the network for flooding. #}
{{ node_service(unit, 'bots', dir, bot.repo, bot.rev,
     command=bot.get('command', dir ~ '/node_modules/.bin/hubot --adapter irc --name ' ~ bot.nick),
     env_dir='/etc/bots',
     env=env,
     description=bot.get('description', 'IRC bot ' ~ bot.nick),
     restart='always',
     restart_sec=30) }}

{{ monit_check(unit, matching=bot.get('matching', dir ~ '/')) }}
{%- endfor %}
