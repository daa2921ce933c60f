# Operators in `sudoers` (pillar) get sudo on every VM; checked with visudo before it is used.
sudo:
  pkg.installed: []

/etc/sudoers.d/site:
  file.managed:
    - source: salt://sudo/files/site.jinja
    - template: jinja
    - mode: '0440'
    - check_cmd: /usr/sbin/visudo -c -f
    - context:
        sudoers: {{ salt['pillar.get']('sudoers', [])|yaml }}
    - require:
      - pkg: sudo
