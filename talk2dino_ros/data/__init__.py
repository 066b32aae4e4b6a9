"""Offline dataset tools: the benchmark registry, dataset readers and label converters.

Modules: ``benchmarks`` (class lists, layouts, protocols, published numbers; pure data),
``datasets`` (readers for the mmseg layouts), ``convert_context`` / ``convert_coco_stuff`` /
``convert_coco_object`` (label conversions behind the ``convert_dataset`` command).
"""
