# Every VM's exim4 hands mail to the VM with the `mail` role.
{%- set level = salt['grains.get']('level', 'production') %}
mail:
  smarthost: mail.{{ level }}.wpdn
