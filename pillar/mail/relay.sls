# Every VM's exim4 hands its mail to the VM with the `mail` role, over the internal network.
{%- set level = salt['grains.get']('level', 'production') %}
mail:
  smarthost: mail.{{ level }}.wpdn
