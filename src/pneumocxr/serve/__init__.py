"""``pneumocxr serve``: a DICOM node that triages chest radiographs as they arrive.

Steps, one module each: ``config`` (serve.toml), ``journal`` (the SQLite journal every state change
goes through), ``scp`` (receiving: Storage SCP writing a durable inbox), ``worker`` (scoring with the
code ``pneumocxr predict`` uses), ``report_sr`` (the TID 1500 Structured Report), ``delivery``
(C-STORE of the results to the PACS, exactly once per source instance), ``node`` (threads, signals,
metrics) and ``worklist`` (the prioritised list and its statistics). Design: docs/serve.md.
"""
