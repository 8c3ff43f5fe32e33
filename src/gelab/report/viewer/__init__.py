"""The static viewer: an environment browser, a trajectory explorer and failure summaries as one
self-contained site that opens from disk (``file://``), with no server and no network.

Modules, one job each: ``logs`` (read and check trajectory logs), ``aggregate`` (pure functions:
outcomes, loops, failure tallies, Wilson intervals), ``envdata`` (the page graph, its layout and
hotspots), ``images`` (page screenshots for the site), ``assets`` (the HTML/JS/CSS shipped in
``static/``), ``site`` (the writer), ``cases`` (case-study PNGs across models).

Site layout (``gelab view --out DIR``)::

    DIR/index.html                 the app (hash routes: #/env, #/episodes, #/episode/N, #/failures)
    DIR/assets/viewer.{js,css}
    DIR/data/env.js                window.GELAB_ENV: pages, hotspots (0..1000), tree layout, per environment
    DIR/data/index.js              window.GELAB_INDEX: tasks and one column per episode field (filters)
    DIR/data/summary.js            window.GELAB_SUMMARY: failure summaries per model
    DIR/data/chunks/MODEL/K.js     gelabChunk(MODEL, K, [...]): the steps of CHUNK episodes, loaded on demand
    DIR/img/ENV/page_N.jpg         page screenshots at canvas aspect

Data is written as ``.js`` files that assign to globals because Chromium refuses ``fetch`` of local
JSON under ``file://``; a ``<script>`` tag is allowed.
"""
