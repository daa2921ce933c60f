# Every VM's exim4 hands its mail to the mail VM (its infra:hosts_entries name), which
# relays it out; mail leaves as <user>@<the level's tld>, a domain OpenDKIM signs.
mail:
  smarthost: mail
