# The shared base of the site's PHP web roles (app, blog, project): nginx, the only public
# service, in front of PHP-FPM, which listens on Unix sockets only. Each role adds its site
# with the `vhost` macro of webapp/vhost.jinja.
include:
  - webapp.nginx
  - webapp.php
