"""Pure decisions over what the face engine found: the open-set rule (``matcher``), the second
look, the best frame and the blink over a burst (``decisions``, ``liveness``), and the
``RecognitionService`` that applies them to a scan. No I/O, no clock, no database."""
