"""``striate serve``: trained runs as a local web page and a JSON API.

:func:`striate.serve.app.create_app` builds the ASGI application (FastAPI): every run is
loaded once, as a :mod:`striate.predict` predictor, and shared by all requests; inference
runs off the event loop, and concurrent requests to a batchable run (the image classifier)
share forward passes (:mod:`striate.serve.batching`). Everything the pages need (HTML, scripts,
styles) lies in ``static/`` inside the package: nothing is fetched from elsewhere.
"""
