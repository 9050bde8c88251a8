"""The playground: drive a trained world model one entity at a time in the browser.

* ``session``  :class:`~latentrl.playground.session.PlaySession`: start frames, selection,
  stepping, undo, labels, pictures and GIF/MP4 export (no web code).
* ``server``   a Starlette app over one session (``experiments/play.py`` serves it with uvicorn);
  the page is ``page.html``, plain HTML and JavaScript with no build step.
"""
