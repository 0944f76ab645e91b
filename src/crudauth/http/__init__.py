"""HTTP edge helpers: client IP, guards, error mapping."""

from crudauth.http.errors import http_errors, to_http
from crudauth.http.origins import SAFE_METHODS, no_store, refuse_cross_site
from crudauth.http.request import client_ip

__all__ = ["SAFE_METHODS", "client_ip", "http_errors", "no_store", "refuse_cross_site", "to_http"]
