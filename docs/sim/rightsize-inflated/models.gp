set terminal pngcairo size 900,450 noenhanced
set output 'docs/sim/rightsize-inflated/models.png'
set datafile separator ','
set style data histograms
set style fill solid 0.7 border -1
set ylabel 'run time, s'
set title 'Per-model run time (thesis Fig 10)'
set key top left
set yrange [0:*]
plot 'docs/sim/rightsize-inflated/models.csv' every ::1 using 2:xtic(1) title 'default', '' every ::1 using 3 title 'dedupd', '' every ::1 using 4 title 'oracle'
