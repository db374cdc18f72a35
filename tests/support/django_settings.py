"""Django's settings belong to the whole process: every test that uses Django in
process configures them here, once, with what all of those tests need (the receiver's
example view and the publishing adapter), whichever of them runs first."""

from __future__ import annotations


def configure_django() -> None:
    import django
    from django.conf import settings

    if settings.configured:
        return
    settings.configure(
        ROOT_URLCONF="examples.receiver.django_app",
        ALLOWED_HOSTS=["testserver"],
        SECRET_KEY="test-only",
        MIDDLEWARE=["django.middleware.csrf.CsrfViewMiddleware"],
    )
    django.setup()
