# The IRC bots (bots role): one Hubot per entry, deployed from the source VM.
bots:
  instances:
    # name: repository on the source VM and `rev` (a tag or a commit: changing it deploys
    # it), IRC network, channels and nick; `command` and `env` are optional.
    webplatform:
      description: WebPlatform's IRC bot (Hubot)
      repo: git://source/webplatform-bot.git
      rev: v1.0.0
      network:
        server: irc.libera.chat
        port: 6697
        tls: true
      channels:
        - '#webplatform'
      nick: wpd-bot
