# PLACEHOLDER secrets. The real ones live outside this repository; see private/README.
bots:
  instances:
    webplatform:
      # The nick's NickServ password.
      password: CHANGE-ME-bot-nickserv
