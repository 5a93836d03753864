"""The example service: Flask + SQLAlchemy 2 using gunicorn-zdt as a user would."""
