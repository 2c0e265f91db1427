set terminal pngcairo size 1000,700 noenhanced
set output 'docs/sim/gpu-curve/gpu-curve.png'
set datafile separator ','
set multiplot layout 2,1
set key top right
set xlabel 'time, s'
set ylabel 'GPUs computing (share of all)'
set title 'GPU utilisation over time, first seed (thesis Fig 11)'
plot '< grep ",default," docs/sim/gpu-curve/timeseries.csv' using 3:5 with lines title 'default', '< grep ",dedupd," docs/sim/gpu-curve/timeseries.csv' using 3:5 with lines title 'dedupd'
set ylabel 'GPU memory in use, GiB'
set title 'GPU memory over time'
plot '< grep ",default," docs/sim/gpu-curve/timeseries.csv' using 3:6 with lines title 'default', '< grep ",dedupd," docs/sim/gpu-curve/timeseries.csv' using 3:6 with lines title 'dedupd'
unset multiplot
