"""What the sender's two front ends share: the API (``hookline.api``, under /api/v1) and
the dashboard (``hookline.web``, at /). Neither imports the other; both import this.

``access`` says who is calling and which apps they may see (one rule for both);
``quotas`` the rate limits on callers; ``paging`` the cursors of paged lists;
``services`` the parts of the running server (the store, the engine to wake) that
``hookline.server`` puts in the application's state.
"""
