"""Data layer: episodes -> lossless Minari datasets -> in-memory frame cache -> code windows.

Modules (import from them directly; this package imports nothing, so that generation workers
and scripts load only what they use):

* ``naming``    dataset ids (``multigrid/empty-agent_4-v0``) and the split convention
  (``-v0`` train, ``-v1`` validation, ``-v2`` test).
* ``episode``   :class:`Episode` (frames uint8 ``(T+1, h, w, c)``, actions ``(T, a)``, infos) and
  the per-frame deflate encoding the datasets store.
* ``generate``  roll out a Gymnasium env with a behaviour policy in worker processes;
  ``generate_dataset`` writes the result.
* ``minari_io`` atomic, lossless Minari writing (``DatasetWriter``), reading (``DatasetReader``),
  ``list_datasets``, ``load_minari_dataset`` and the datasets root.
* ``cache``     :class:`FrameCache`: datasets read into one uint8 ``(F, h, w, c)`` array.
* ``windows``   where windows of ``t`` frames may start without crossing an episode.
* ``bench``     dataset write/read throughput.
* ``errors``    the exceptions, each message naming the problem and the fix.
"""
