"""SiamFC object tracking: data, model, tracker, metrics."""
