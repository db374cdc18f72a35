"""The receiver as a Flask view: ``flask --app examples.receiver.flask_app run``.

Under gunicorn each worker process stores webhooks through its own background loop; all of
them share the inbox, and lanes keep one handler at a time per user across them.
"""

from __future__ import annotations

from flask import Flask

from examples.receiver.basic import receiver
from hookline.receiver.flask import webhook_view

app = Flask(__name__)
app.add_url_rule("/webhooks/selz", view_func=webhook_view(receiver), methods=["POST"])
